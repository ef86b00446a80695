"""The test kit that ships with shipper: loopback receivers that behave as each service documents, and the sink contract suite a third-party sink runs too."""
