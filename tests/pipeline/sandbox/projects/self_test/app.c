#include <stdio.h>
#include "hash.h"
int main(int argc, char **argv) { printf("%u\n", hash_str(argc > 1 ? argv[1] : "")); return 0; }
