"""The admin API: browse, edit, diff and audit recordings; switch modes at run time."""
