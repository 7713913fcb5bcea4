/* The driftcast executable: everything happens in dc_main (daemon/cli.c). */
#include "daemon/cli.h"

int main(int argc, char **argv)
{
	return dc_main(argc, argv);
}
