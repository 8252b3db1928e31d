"""b12drugs: screen prescriptions for drugs that lower vitamin B12.

Python API::

    from b12drugs import screen
    from b12drugs.models import Order, PatientContext

    report = screen(
        [Order(id="rx1", patient_id="p1", text="metformin 500 mg tablet", status="active")],
        patient=PatientContext(id="p1", birth_date="1950-02-01"),
    )
    for alert in report.alerts:
        print(alert.severity, alert.summary)

Plugins implement hooks with :data:`hookimpl`; see :mod:`b12drugs.hookspecs`.
"""

from .__about__ import __version__
from .hookspecs import hookimpl

NLM_ATTRIBUTION = (
    "This product uses publicly available data from the U.S. National Library of Medicine "
    "(NLM), National Institutes of Health, Department of Health and Human Services; NLM is "
    "not responsible for the product and does not endorse or recommend this or any other "
    "product."
)


def __getattr__(name: str) -> object:
    # Lazy: importing the package (e.g. for ``hookimpl`` in a plugin) must stay cheap.
    if name == "screen":
        from .engines import screen

        return screen
    raise AttributeError(name)


__all__ = ["NLM_ATTRIBUTION", "__version__", "hookimpl", "screen"]
