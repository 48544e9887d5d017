"""The shared identity (统一身份): identifiers, normalisation, the master index and golden records.

Identifier modules (:mod:`identity.resident_id`, :mod:`identity.uscc`, :mod:`identity.org_code`,
:mod:`identity.reg_no`, :mod:`identity.taxpayer_id`) follow python-stdnum's shape: ``compact``,
``calc_check_digit``, ``validate``, ``is_valid``, ``format`` and stdnum's typed exceptions.
"""
