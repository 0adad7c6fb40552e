"""The loop's stages as functions over Arrow shards (the driver and the stage CLIs share them)."""

# ouro_ray.config's schema imports the stages' config classes, and the stages import ouro_ray.config.fields;
# importing the config package first makes either import order work (as ouro_ray.world does).
import ouro_ray.config  # noqa: E402,F401  (import order, see above)
