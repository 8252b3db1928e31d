"""b12drugs-hl7v2: HL7 v2 pharmacy messages in, ACKs and alerts out.

* input format ``hl7v2``: RDE/RDS/OMP messages (versions 2.3-2.8) from files, batches and
  MLLP-framed captures, streamed one message at a time (:mod:`.reader`);
* ``b12drugs hl7 listen``: an MLLP listener that screens each pushed message, answers
  an ACK and delivers the alerts to the configured sinks (:mod:`.listener`).
"""

__version__ = "0.1.0"
