// libpng 1.6 (Debian libpng-dev).
#pragma once
#include <png.h>
