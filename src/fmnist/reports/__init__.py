"""Reports a person reads: a run's report.md, a cross-validation's report.md, and the markdown they share."""
