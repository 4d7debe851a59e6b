"""The ``syncbus`` command line: the one place that imports every package."""
