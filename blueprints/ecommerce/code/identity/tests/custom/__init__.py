"""Your own tests: created once by microforge, never overwritten by `copier update`."""
