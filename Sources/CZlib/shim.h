// zlib (Debian zlib1g-dev): gzip streams (.gz data files).
#pragma once
#include <zlib.h>
