/*
 * seed_data.c: the generated demo catalogue (see seed_data.h).
 *
 * Twelve categories, each with its own nouns, adjectives and tag pool;
 * brands and model numbers are shared. Product i takes category i mod 12,
 * so every category gets an even share, and its other choices come from
 * splitmix64 of (seed, i), so one product never depends on another and a
 * larger --products only adds products. About one in twenty-five carries the
 * tag "featured" (the web home page lists those).
 */
#include <stdio.h>
#include <string.h>
#include "seed_data.h"

typedef struct category {
    const char *slug, *code;
    const char *nouns[10];
    const char *adjectives[6];
    const char *tags[6];
    int64_t min_price, max_price; /* cents */
} category_t;

static const category_t categories[] = {
    {"computers",
     "CMP",
     {"Keyboard", "Mechanical Keyboard", "Mouse", "Monitor", "Laptop Stand", "Webcam", "USB Hub", "Docking Station",
      "Trackpad", "Laptop"},
     {"Wireless", "Compact", "Ergonomic", "Backlit", "Silent", "Pro"},
     {"wireless", "usb-c", "ergonomic", "rgb", "office", "gaming"},
     1499,
     189999},
    {"audio",
     "AUD",
     {"Headphones", "Earbuds", "Speaker", "Soundbar", "Microphone", "Turntable", "Amplifier", "Headset", "Radio",
      "Subwoofer"},
     {"Noise-Cancelling", "Portable", "Studio", "Bluetooth", "Hi-Fi", "Waterproof"},
     {"bluetooth", "hifi", "portable", "studio", "noise-cancelling", "wireless"},
     1999,
     99999},
    {"phones",
     "PHN",
     {"Smartphone", "Phone Case", "Charger", "Power Bank", "Screen Protector", "Car Mount", "Cable", "Smartwatch",
      "Wireless Charger", "Stylus"},
     {"Rugged", "Slim", "Fast", "Magnetic", "Clear", "Leather"},
     {"usb-c", "fast-charging", "magsafe", "android", "ios", "accessory"},
     799,
     129999},
    {"home",
     "HOM",
     {"Lamp", "Rug", "Cushion", "Curtain", "Mirror", "Clock", "Vase", "Blanket", "Shelf", "Candle"},
     {"Cozy", "Modern", "Rustic", "Minimalist", "Vintage", "Scandinavian"},
     {"decor", "living-room", "bedroom", "cozy", "handmade", "modern"},
     999,
     49999},
    {"kitchen",
     "KIT",
     {"Chef Knife", "Frying Pan", "Coffee Grinder", "Kettle", "Blender", "Toaster", "Cutting Board", "Espresso Machine",
      "Stock Pot", "Mixing Bowl"},
     {"Stainless", "Cast-Iron", "Non-Stick", "Bamboo", "Electric", "Ceramic"},
     {"cookware", "coffee", "baking", "dishwasher-safe", "eco", "gift"},
     899,
     79999},
    {"garden",
     "GRD",
     {"Garden Hose", "Pruning Shears", "Planter", "Lawn Mower", "Watering Can", "Bird Feeder", "Seed Kit", "Rake",
      "Wheelbarrow", "Hammock"},
     {"Durable", "Foldable", "Solar", "Weatherproof", "Lightweight", "Organic"},
     {"outdoor", "plants", "tools", "solar", "eco", "summer"},
     599,
     59999},
    {"sports",
     "SPT",
     {"Yoga Mat", "Running Shoes", "Dumbbell Set", "Tennis Racket", "Bicycle Helmet", "Water Bottle", "Jump Rope",
      "Football", "Climbing Harness", "Resistance Bands"},
     {"Breathable", "Adjustable", "Lightweight", "Grippy", "Insulated", "Pro"},
     {"fitness", "outdoor", "running", "training", "team-sports", "cycling"},
     699,
     39999},
    {"books",
     "BOK",
     {"Cookbook", "Novel", "Atlas", "Field Guide", "Biography", "Poetry Collection", "Travel Guide", "Comic",
      "Workbook", "Encyclopedia"},
     {"Illustrated", "Hardcover", "Annotated", "Pocket", "Collector's", "Bestselling"},
     {"hardcover", "paperback", "kids", "travel", "gift", "bestseller"},
     499,
     8999},
    {"toys",
     "TOY",
     {"Building Blocks", "Puzzle", "Board Game", "Plush Bear", "Kite", "Train Set", "Doll House", "Robot Kit",
      "Drawing Set", "Marble Run"},
     {"Wooden", "Educational", "Colorful", "Giant", "Magnetic", "Classic"},
     {"kids", "educational", "family", "stem", "wooden", "gift"},
     499,
     24999},
    {"clothing",
     "CLO",
     {"Rain Jacket", "Wool Sweater", "T-Shirt", "Jeans", "Scarf", "Beanie", "Hoodie", "Chinos", "Parka", "Socks"},
     {"Organic", "Merino", "Slim-Fit", "Oversized", "Recycled", "Waterproof"},
     {"cotton", "wool", "winter", "summer", "unisex", "sustainable"},
     999,
     34999},
    {"beauty",
     "BTY",
     {"Face Cream", "Shampoo", "Lip Balm", "Hair Dryer", "Perfume", "Sunscreen", "Beard Oil", "Nail Kit", "Body Lotion",
      "Face Mask"},
     {"Soothing", "Natural", "Vegan", "Hydrating", "Fragrance-Free", "Travel"},
     {"skincare", "haircare", "vegan", "natural", "travel-size", "gift"},
     399,
     14999},
    {"office",
     "OFF",
     {"Notebook", "Fountain Pen", "Desk Organizer", "Office Chair", "Standing Desk", "Desk Lamp", "Whiteboard",
      "Stapler", "Planner", "Paper Shredder"},
     {"Executive", "Compact", "Refillable", "Ergonomic", "Recycled", "Premium"},
     {"stationery", "office", "ergonomic", "school", "desk", "eco"},
     299,
     69999},
};

#define NCATEGORIES (sizeof(categories) / sizeof(categories[0]))

static const char *const brands[] = {"Lumen", "Northwind", "Aster", "Kobold", "Vireo",  "Solace",
                                     "Ember", "Tundra",    "Piko",  "Marlow", "Quill",  "Orbit",
                                     "Fable", "Halcyon",   "Zest",  "Brio",   "Nimbus", "Cobalt"};

static const char *const qualities[] = {"built to last",      "made for every day",   "designed in Europe",
                                        "tested by our team", "a customer favourite", "with a two-year warranty"};

size_t seed_category_count(void)
{
    return NCATEGORIES;
}

/* splitmix64: a fixed, well-mixed sequence from one 64-bit state */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t pick(uint64_t *s, uint64_t n)
{
    return next(s) % n;
}

void seed_product_make(seed_product_t *out, uint64_t seed, unsigned index)
{
    const category_t *c = &categories[index % NCATEGORIES];
    uint64_t s = seed ^ ((uint64_t)index * 0xd1342543de82ef95ULL);
    memset(out, 0, sizeof(*out));
    const char *brand = brands[pick(&s, sizeof(brands) / sizeof(brands[0]))];
    const char *adj = c->adjectives[pick(&s, 6)];
    const char *noun = c->nouns[pick(&s, 10)];
    unsigned model = 100 + (unsigned)pick(&s, 900);
    snprintf(out->sku, sizeof(out->sku), "MP-%s-%05u", c->code, index + 1);
    snprintf(out->name, sizeof(out->name), "%s %s %s %c%u", brand, adj, noun, "ABKMSTVXZ"[pick(&s, 9)], model);
    snprintf(out->category, sizeof(out->category), "%s", c->slug);
    int64_t span = c->max_price - c->min_price;
    /* prices end in 99 cents, as shops like them */
    out->price = (c->min_price + (int64_t)pick(&s, (uint64_t)span)) / 100 * 100 + 99;
    out->stock = (int64_t)pick(&s, 10) == 0 ? 0 : (int64_t)pick(&s, 500) + 1;
    size_t ntags = 0;
    unsigned first = (unsigned)pick(&s, 6), second = (unsigned)pick(&s, 6);
    out->tags[ntags++] = c->tags[first];
    if (second != first)
        out->tags[ntags++] = c->tags[second];
    if (pick(&s, 25) == 0)
        out->tags[ntags++] = "featured";
    out->tags[ntags] = NULL;
    snprintf(out->description, sizeof(out->description),
             "The %s %s %s by %s, %s. A %s pick for anyone who wants %s gear that simply works. Model %u.", brand, adj,
             noun, brand, qualities[pick(&s, 6)], c->slug, out->tags[0], model);
    snprintf(out->image_url, sizeof(out->image_url), "https://images.moonport.example/products/%s.jpg", out->sku);
}
