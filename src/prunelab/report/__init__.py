"""Reports: markdown tables and number formats (markdown.py), headless figures (plots.py), the
tables every experiment's report has (experiment.py) and the published numbers beside ours
(references.py). Families add their own sections from their packages."""
