"""The shop's own date formats per language (FORMAT_MODULE_PATH), where Django's do not read well to shoppers."""
