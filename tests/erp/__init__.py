"""A real ERP for connector and metric-pack tests: Tryton databases built through Tryton's own API."""
