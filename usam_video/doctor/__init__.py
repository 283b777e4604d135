"""Install checks: sam2 integrity against the upstream manifest (and, later, the doctor command)."""
