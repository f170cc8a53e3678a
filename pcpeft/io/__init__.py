"""Reading files a user is handed without running code from them."""
from .safe_pickle import RefusedPickleError, safe_pickle_load

__all__ = ["RefusedPickleError", "safe_pickle_load"]
