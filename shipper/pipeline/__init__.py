"""The pipeline: plan windows, fetch them once, deliver them to every sink, commit each sink's cursor."""
