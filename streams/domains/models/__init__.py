"""The models domain: fetch the four catalogues, unify them, sync the catalogue table."""
