"""Data validation (数据校验): Great Expectations suites per canonical entity, quarantine of
failing rows with reasons, and exact reconciliation of counts (pulled = accepted + quarantined)."""
