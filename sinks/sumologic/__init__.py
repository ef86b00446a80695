"""Sumo Logic HTTP source sink (`type = "sumologic"`)."""
