"""`evoforge serve`: a live web view of a run database, and a person's actions on a running search."""
