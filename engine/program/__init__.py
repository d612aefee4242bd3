"""Program text: turning an answer into a program, canonical forms, reading a person's candidate."""
