"""Generators of the documentation's reference pages (the config reference, the SIEM mappings); not shipped."""
