#include "devices/acpi_pm.h"

#include <string.h>

#include "common/log.h"
#include "common/util.h"

static void acpi_pm_read(struct dev *d, uint64_t off, void *data, unsigned len)
{
	(void)d;
	(void)off;
	/* Status: WAK_STS never set. Control: write-only in effect, reads as 0. */
	memset(data, 0, len);
}

static void acpi_pm_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct acpi_pm *pm = container_of(d, struct acpi_pm, dev);
	uint8_t v = *(const uint8_t *)data; /* byte registers: wider writes keep the low byte */
	unsigned type = (v & ACPI_PM_SLP_TYP_MASK) >> ACPI_PM_SLP_TYP_SHIFT;

	(void)len;
	/* Status writes clear WAK_STS (write 1 to clear), which is never set. */
	if (off != ACPI_PM_CONTROL || !(v & ACPI_PM_SLP_EN))
		return;
	if (type == pm->s5_type) {
		pm->host->request_stop(pm->host->opaque, DEV_STOP_POWER_OFF, 0);
		return;
	}
	if (!atomic_exchange(&pm->warned, true))
		log_debug("acpi: the guest asked for sleep type %u; only S5 (type %u, power "
			  "off) is offered, ignored",
			  type, pm->s5_type);
}

static const struct dev_ops acpi_pm_ops = {
	.name = "acpi-pm",
	.read = acpi_pm_read,
	.write = acpi_pm_write,
};

void acpi_pm_init(struct acpi_pm *pm, const struct dev_host *host, unsigned s5_type)
{
	memset(pm, 0, sizeof(*pm));
	pm->dev.ops = &acpi_pm_ops;
	pm->host = host;
	pm->s5_type = s5_type;
	atomic_init(&pm->warned, false);
}
