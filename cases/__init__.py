"""The case repository (办件库): one supervision code per application and every department's steps on one timeline.

- :mod:`cases.catalogue` — the service-item catalogue (事项库): items, stages, time limits, materials;
- :mod:`cases.tables` — cases, their materials, dispatches and the append-only step log;
- :mod:`cases.steps` — the step vocabulary and how a timeline is read (order, impossible steps, who holds it);
- :mod:`cases.intake` — an application taken in at the window (受理, 不予受理, 容缺受理, 告知承诺, 一次性告知);
- :mod:`cases.service` — steps reported by departments, reads by code and by applicant;
- :mod:`cases.views` — what a case looks like outside, personal data masked by kind.

Sits above the e-licence store, identity and validation, below recognition (the API).
"""
