/// ImageIO: PNG read and write through libpng, image grids, resizing and cropping.
public enum ImageIO {}
