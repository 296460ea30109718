#include "calc.h"
int main(void) { return sub(5, 3) == 2 ? 0 : 1; }
