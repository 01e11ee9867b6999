"""``python -m algospace.config``: print the experiment schema's key reference (Markdown)."""

from algospace.config.reference import schema_reference

print(schema_reference(), end="")
