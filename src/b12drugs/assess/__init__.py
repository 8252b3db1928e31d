"""Assess: a patient's risk factors, the alert rules and their wording.

:mod:`.risk` names the risk factors of a patient (conditions, labs, diet, age),
:mod:`.rules` holds the builtin rules (the default severity policy and folate masking),
:mod:`.plugin` registers both as the builtin ``policy`` plugin.  Both engines hand their
:class:`~b12drugs.records.PatientCase`\\ s to the same code here.
"""
