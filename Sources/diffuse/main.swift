import Tensors
print("diffuse")
