#ifndef BUF_H
#define BUF_H
int buf_sum(const int *v, int n);
#endif
