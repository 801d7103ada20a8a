"""perfkit's demonstration (`perfkit demo`)."""
