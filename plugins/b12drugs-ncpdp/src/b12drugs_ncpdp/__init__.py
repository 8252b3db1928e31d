"""b12drugs-ncpdp: read NCPDP SCRIPT prescriptions (10.6 and 2017071) into b12drugs.

Installed next to b12drugs, it registers the ``ncpdp`` input format through the
``b12drugs`` entry-point group, so ``b12drugs screen newrx.xml`` recognises SCRIPT XML.
XML is parsed only through :mod:`defusedxml`; DTDs and entities are refused.
"""

from .__about__ import __version__
from .reader import NcpdpReader, parse
from .sniff import sniff

__all__ = ["NcpdpReader", "__version__", "parse", "sniff"]
