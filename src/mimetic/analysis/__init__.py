"""Insight into data and runs: `inspect` (dataset summary), `compare` (methods side by side),
`shift` (expert vs learner state distributions), `report` (one self-contained HTML page).
Each function returns a JSON-ready dict and writes its plots as PNG files."""
