"""The loop's stages as functions over Arrow shards (the driver and the stage CLIs share them)."""

