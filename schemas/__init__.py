"""Wire contracts of journeystream: JSON Schemas, typed records, decode/encode."""
