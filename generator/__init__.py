"""microforge: a YAML domain spec in, a production-shaped Python microservice out.

Layers (each only imports the ones before it):
spec (parse/validate) -> plan (what to render) -> render (Copier) -> compose (system)
-> run (local processes).
"""

__version__ = "0.1.0"
