"""Database: the schema (the one place tables are declared), engines and migrations."""
