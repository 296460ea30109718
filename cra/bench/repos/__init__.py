"""The `repos` suite of `cra bench quality`: real C libraries fetched as Debian source packages (fetch), the
tasks each library's own tests detect (manifest), and the checker that proves it (verify)."""
