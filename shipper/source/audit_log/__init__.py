"""The OpenAI audit-log source: `GET /v1/organization/audit_logs` with an admin key."""
