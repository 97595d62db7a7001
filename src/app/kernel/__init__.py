"""The platform every module stands on. Imports contracts, never modules or the rest of app."""
