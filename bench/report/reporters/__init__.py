"""Built-in reporters, registered through entry points like any third-party reporter."""
