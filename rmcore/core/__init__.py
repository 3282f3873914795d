"""The bottom layer: typed params (config, formats), the file layout (paths), atomic writes and
content hashes. Imports nothing else of rmcore."""
