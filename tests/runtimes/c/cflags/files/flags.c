#include <stdio.h>

int main(void)
{
#ifdef GREETING
	puts(GREETING);
#else
	puts("no GREETING");
#endif
	return 0;
}
