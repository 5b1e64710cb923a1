"""The research store on disk: where each dataset version's table, its bounded view and the derived
cohort frames live. The one place that turns a version's recorded path into files."""
