"""What a run found: the queries, their text and JSON views, plots, the HTML report and export."""
