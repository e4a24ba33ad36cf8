/** A handful of inline line icons (24×24, currentColor), so nothing is fetched at run time. */
import type { ReactNode } from 'react';

function Icon({ children, size = 18, title }: { children: ReactNode; size?: number; title?: string }) {
  const common = {
    width: size,
    height: size,
    viewBox: '0 0 24 24',
    fill: 'none',
    stroke: 'currentColor',
    strokeWidth: 1.8,
    strokeLinecap: 'round' as const,
    strokeLinejoin: 'round' as const,
    className: 'icon',
  };
  if (title) {
    return (
      <svg {...common} role="img">
        <title>{title}</title>
        {children}
      </svg>
    );
  }
  return (
    <svg {...common} aria-hidden="true">
      {children}
    </svg>
  );
}

type P = { size?: number; title?: string };

export const CubeIcon = (p: P) => (
  <Icon {...p}>
    <path d="M12 2.8 20 7.2v9.6L12 21.2 4 16.8V7.2z" />
    <path d="M4 7.2 12 11.6l8-4.4M12 11.6v9.6" />
  </Icon>
);
export const ArrowRightIcon = (p: P) => (
  <Icon {...p}>
    <path d="M5 12h14M13 6l6 6-6 6" />
  </Icon>
);
export const ChevronLeftIcon = (p: P) => (
  <Icon {...p}>
    <path d="m15 6-6 6 6 6" />
  </Icon>
);
export const ChevronRightIcon = (p: P) => (
  <Icon {...p}>
    <path d="m9 6 6 6-6 6" />
  </Icon>
);
export const SearchIcon = (p: P) => (
  <Icon {...p}>
    <circle cx="11" cy="11" r="6.5" />
    <path d="m16 16 4.5 4.5" />
  </Icon>
);
export const CopyIcon = (p: P) => (
  <Icon {...p}>
    <rect x="8.5" y="8.5" width="11" height="11" rx="2.2" />
    <path d="M15.5 8.5V6.7a2.2 2.2 0 0 0-2.2-2.2H6.7a2.2 2.2 0 0 0-2.2 2.2v6.6a2.2 2.2 0 0 0 2.2 2.2h1.8" />
  </Icon>
);
export const CheckIcon = (p: P) => (
  <Icon {...p}>
    <path d="m5 12.5 4.5 4.5L19 7.5" />
  </Icon>
);
export const ChipIcon = (p: P) => (
  <Icon {...p}>
    <rect x="6" y="6" width="12" height="12" rx="2" />
    <rect x="9.5" y="9.5" width="5" height="5" rx="0.8" />
    <path d="M9 2.5V6M15 2.5V6M9 18v3.5M15 18v3.5M2.5 9H6M2.5 15H6M18 9h3.5M18 15h3.5" />
  </Icon>
);
export const ShieldIcon = (p: P) => (
  <Icon {...p}>
    <path d="M12 3 19.5 6v5.6c0 4.6-3.1 8.2-7.5 9.4-4.4-1.2-7.5-4.8-7.5-9.4V6z" />
    <path d="m8.8 12 2.2 2.2 4.3-4.4" />
  </Icon>
);
export const StoreIcon = (p: P) => (
  <Icon {...p}>
    <path d="M4 9.5V20h16V9.5M3 9.5 5 4h14l2 5.5" />
    <path d="M3 9.5a3 3 0 0 0 6 0 3 3 0 0 0 6 0 3 3 0 0 0 6 0M10 20v-5h4v5" />
  </Icon>
);
export const PickIcon = (p: P) => (
  <Icon {...p}>
    <path d="M14.5 5.5 18.5 9.5M4 20l9.2-9.2" />
    <path d="M9.5 4.5c3.8-1.4 7.8-.8 10 1.4s2.8 6.2 1.4 10c-1-2.9-2.7-5.5-4.8-7.6S12.4 5.5 9.5 4.5z" />
  </Icon>
);
export const PulseIcon = (p: P) => (
  <Icon {...p}>
    <path d="M3 12h4l2.5-6 5 12 2.5-6H21" />
  </Icon>
);
export const AlertIcon = (p: P) => (
  <Icon {...p}>
    <path d="M12 3.5 21.5 20h-19z" />
    <path d="M12 10v4.5M12 17.3v.2" />
  </Icon>
);
export const FlameIcon = (p: P) => (
  <Icon {...p}>
    <path d="M12 21c3.9 0 6.5-2.6 6.5-6.2 0-3.4-2.4-5.6-3.7-8.3-.6 1.8-1.5 2.9-2.8 3.5C12.4 7 11 4.5 8.7 3c.3 3.2-3.2 6-3.2 11.8C5.5 18.4 8.1 21 12 21z" />
  </Icon>
);
export const UserIcon = (p: P) => (
  <Icon {...p}>
    <circle cx="12" cy="8.5" r="4" />
    <path d="M4.5 20.5c.9-3.9 3.9-6 7.5-6s6.6 2.1 7.5 6" />
  </Icon>
);
export const SettingsIcon = (p: P) => (
  <Icon {...p}>
    <path d="M4 7h10M18 7h2M4 17h2M10 17h10" />
    <circle cx="16" cy="7" r="2.2" />
    <circle cx="8" cy="17" r="2.2" />
  </Icon>
);

export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 32 32" aria-hidden="true" className="logo">
      <defs>
        <linearGradient id="logo-g" x1="0" y1="0" x2="1" y2="1">
          <stop offset="0" stopColor="#5eead4" />
          <stop offset="1" stopColor="#818cf8" />
        </linearGradient>
      </defs>
      <rect width="32" height="32" rx="8" fill="#131c30" />
      <path
        d="M9 8v9a7 7 0 0 0 14 0V8"
        fill="none"
        stroke="url(#logo-g)"
        strokeWidth="3.2"
        strokeLinecap="round"
      />
      <circle cx="16" cy="17" r="2.6" fill="#5eead4" />
    </svg>
  );
}
