"""Pure decision code: no ORM, no network, no settings. Plain functions over plain data."""
