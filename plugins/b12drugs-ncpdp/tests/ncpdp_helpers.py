"""Builders for SCRIPT test messages (our own, written for these tests).

Codes: RxCUIs come from /work/shared/reference/verified_products.csv (861007 metformin
hydrochloride 500 MG Oral Tablet; 198051 Omeprazole 20 MG Delayed Release Oral Capsule);
the SNOMED CT code 368581000119106 (neuropathy due to type 2 diabetes) from the Synthea
corpus.  NDCs are deliberately fake: labeler 99999 is not assigned to any real firm.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

NS = "http://www.ncpdp.org/schema/SCRIPT"
METFORMIN_SCD = "861007"
OMEPRAZOLE_SCD = "198051"
NEUROPATHY_SNOMED = "368581000119106"
FAKE_NDC = "99999-0001-01"
FAKE_NDC_11 = "99999000101"


def _e(tag: str, text: object | None) -> str:
    return "" if text is None else f"<{tag}>{escape(str(text))}</{tag}>"


def medication_2017071(
    *,
    element: str = "MedicationPrescribed",
    description: str | None = "metformin hydrochloride 500 MG Oral Tablet",
    ndc: str | None = FAKE_NDC,
    ndc_qualifier: str = "ND",
    db_code: str | None = METFORMIN_SCD,
    db_qualifier: str = "SCD",
    days_supply: object | None = 90,
    written: str | None = "2025-11-03",
    sig: str | None = "Take 1 tablet by mouth twice daily with meals",
    diagnoses: tuple[tuple[str, str, str | None], ...] = (),
    strength: tuple[str, str] | None = ("500", "C28253"),
) -> str:
    coded = ""
    if ndc is not None:
        coded += f"<ProductCode>{_e('Code', ndc)}{_e('Qualifier', ndc_qualifier)}</ProductCode>"
    if strength is not None:
        coded += (f"<Strength>{_e('StrengthValue', strength[0])}"
                  f"<StrengthUnitOfMeasure>{_e('Code', strength[1])}</StrengthUnitOfMeasure>"
                  "</Strength>")
    if db_code is not None:
        coded += f"<DrugDBCode>{_e('Code', db_code)}{_e('Qualifier', db_qualifier)}</DrugDBCode>"
    diag = ""
    if diagnoses:
        parts = "".join(
            f"<{'Primary' if i == 0 else 'Secondary'}>{_e('Code', c)}{_e('Qualifier', q)}"
            f"{_e('Description', d)}</{'Primary' if i == 0 else 'Secondary'}>"
            for i, (c, q, d) in enumerate(diagnoses)
        )
        diag = ("<Diagnosis><ClinicalInformationQualifier>1</ClinicalInformationQualifier>"
                f"{parts}</Diagnosis>")
    return (
        f"<{element}>{_e('DrugDescription', description)}"
        + (f"<DrugCoded>{coded}</DrugCoded>" if coded else "")
        + "<Quantity><Value>180</Value><CodeListQualifier>38</CodeListQualifier>"
        "<QuantityUnitOfMeasure><Code>C48542</Code></QuantityUnitOfMeasure></Quantity>"
        + _e("DaysSupply", days_supply)
        + (f"<WrittenDate><Date>{written}</Date></WrittenDate>" if written else "")
        + (f"<Sig>{_e('SigText', sig)}</Sig>" if sig else "")
        + diag
        + f"</{element}>"
    )


def patient_2017071(
    patient_id: str | None = "MRN-1001", birth_date: str | None = "1955-06-01",
    gender: str = "F",
) -> str:
    ident = (f"<Identification>{_e('MedicalRecordIdentificationNumberEHR', patient_id)}"
             "</Identification>") if patient_id else ""
    dob = f"<DateOfBirth><Date>{birth_date}</Date></DateOfBirth>" if birth_date else ""
    return (f"<Patient><HumanPatient>{ident}<Name><LastName>Testpatient</LastName>"
            f"<FirstName>Avery</FirstName></Name>{_e('Gender', gender)}{dob}"
            "</HumanPatient></Patient>")


def message_2017071(
    message_id: str = "MSG-1",
    *,
    transaction: str = "NewRx",
    medications: tuple[str, ...] | None = None,
    patient: str | None = None,
    namespace: bool = True,
    prefix: str | None = None,
    declaration: bool = True,
    **med: object,
) -> str:
    meds = medications if medications is not None else (medication_2017071(**med),)  # type: ignore[arg-type]
    pat = patient if patient is not None else patient_2017071()
    body = (f"<Message><Header>{_e('MessageID', message_id)}<SentTime>2025-11-03T10:00:00Z"
            f"</SentTime></Header><Body><{transaction}>{pat}{''.join(meds)}</{transaction}>"
            "</Body></Message>")
    if prefix:
        body = _prefixed(body, prefix)
        body = body.replace(f"<{prefix}:Message>", f'<{prefix}:Message xmlns:{prefix}="{NS}">', 1)
    elif namespace:
        body = body.replace("<Message>", f'<Message xmlns="{NS}" version="2017071">', 1)
    decl = '<?xml version="1.0" encoding="UTF-8"?>\n' if declaration else ""
    return decl + body


def _prefixed(xml: str, prefix: str) -> str:
    import re

    return re.sub(r"<(/?)([A-Za-z])", lambda m: f"<{m[1]}{prefix}:{m[2]}", xml)


def message_106(
    message_id: str = "MSG-106",
    *,
    description: str | None = "Omeprazole 20 MG Delayed Release Oral Capsule",
    ndc: str | None = "99999-0002-30",
    ndc_qualifier: str = "ND",
    db_code: str | None = OMEPRAZOLE_SCD,
    db_qualifier: str = "SCD",
    patient_id: str | None = "MRN-2002",
    birth_date: str = "1950-02-14",
    diagnosis: tuple[str, str] | None = None,
    namespace: bool = False,
) -> str:
    coded = ""
    if ndc is not None:
        coded += _e("ProductCode", ndc) + _e("ProductCodeQualifier", ndc_qualifier)
    coded += _e("Strength", "20")
    if db_code is not None:
        coded += _e("DrugDBCode", db_code) + _e("DrugDBCodeQualifier", db_qualifier)
    ident = (f"<Identification>{_e('PatientAccountNumber', patient_id)}</Identification>"
             if patient_id else "")
    diag = ""
    if diagnosis:
        diag = ("<Diagnosis><ClinicalInformationQualifier>1</ClinicalInformationQualifier>"
                f"<Primary>{_e('Qualifier', diagnosis[1])}{_e('Value', diagnosis[0])}</Primary>"
                "</Diagnosis>")
    ns = f' xmlns="{NS}"' if namespace else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Message{ns} version="010" release="006">'
        f"<Header>{_e('To', 'PHARM1')}{_e('From', 'PRESC1')}{_e('MessageID', message_id)}"
        "<SentTime>2025-10-01T09:00:00</SentTime></Header><Body><NewRx>"
        f"<Patient>{ident}<Name><LastName>Sample</LastName><FirstName>Jordan</FirstName></Name>"
        f"<Gender>M</Gender><DateOfBirth><Date>{birth_date}</Date></DateOfBirth></Patient>"
        f"<MedicationPrescribed>{_e('DrugDescription', description)}"
        f"<DrugCoded>{coded}</DrugCoded><Quantity><Value>30</Value>"
        "<PotencyUnitCode>C48480</PotencyUnitCode></Quantity>"
        "<DaysSupply>30</DaysSupply><Directions>Take 1 capsule daily before breakfast</Directions>"
        f"<WrittenDate><Date>2025-10-01</Date></WrittenDate>{diag}</MedicationPrescribed>"
        "</NewRx></Body></Message>"
    )


def strip_declaration(xml: str) -> str:
    return xml.split("?>", 1)[1].lstrip() if xml.startswith("<?xml") else xml


def container(messages: list[str], name: str = "Messages") -> str:
    inner = "\n".join(strip_declaration(m) for m in messages)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{name}>\n{inner}\n</{name}>\n'


def concatenated(messages: list[str]) -> str:
    return "\n".join(messages) + "\n"
