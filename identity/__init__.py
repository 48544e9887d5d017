"""The shared identity (统一身份): the master index, cross-walk, matching and golden records.

The identifier rules it applies (resident id, USCC, organisation code, registration number,
taxpayer id, normalisation) are the pure package :mod:`identifiers`.
"""
