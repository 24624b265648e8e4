"""Domain core and adapters of the custom channel runtime. Imports nothing from azure.functions."""
