"""Reports: markdown tables and number and word formats (markdown.py), headless figures (plots.py),
the summary table (summary.py) and which measured model is its dense baseline (baseline.py), the
other tables every experiment's report has (experiment.py), the published numbers beside ours and
when they apply (references.py), and the short summary printed on the terminal (terminal.py).
Families add their own sections from their packages."""
