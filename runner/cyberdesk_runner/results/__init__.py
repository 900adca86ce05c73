"""What a fire produced, as a table: its columns (`table`), its formats (`formats`) and its result file (`files`)."""
