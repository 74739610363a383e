"""Inference backends: one interface (`Backend`), one file each, each importing its library only when used."""
