"""In-process state: the key and route caches, usage accounting, and the optional Redis link."""
